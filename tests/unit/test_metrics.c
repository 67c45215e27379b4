/* Unit tests of lib/metrics.c: the exposition format, histograms, hidden series, health,
 * and metrics.listen's parser (lib/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "caresignal/config.h"
#include "caresignal/metrics.h"
#include "caresignal/metrics_server.h"

static int teardown(void **state)
{
    (void)state;
    cs_metrics_reset();
    return 0;
}

static char *render(void)
{
    size_t len = 0;
    char *text = cs_metrics_render(&len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void test_counter_and_labels(void **state)
{
    (void)state;
    cs_metric_t *m = cs_metric(CS_METRIC_COUNTER, "cs_test_total", "a \\ help\nline",
                               "topic,reason");
    cs_series_t *a = cs_metric_at(m, "t1", "BAD");
    cs_series_add(a, 2);
    cs_series_add(cs_metric_at(m, "t1", "BAD"), 1); /* the same series */
    cs_series_add(cs_metric_at(m, "t\"2\n", "a\\b"), 0.5);
    assert_true(cs_metric(CS_METRIC_COUNTER, "cs_test_total", "other", "x") == m);
    assert_null(cs_metric(CS_METRIC_GAUGE, "cs_test_total", "", NULL)); /* type differs */
    assert_true(cs_series_value(a) == 3);
    char *t = render();
    assert_non_null(strstr(t, "# HELP cs_test_total a \\\\ help\\nline\n"));
    assert_non_null(strstr(t, "# TYPE cs_test_total counter\n"));
    assert_non_null(strstr(t, "cs_test_total{topic=\"t1\",reason=\"BAD\"} 3\n"));
    assert_non_null(strstr(t, "cs_test_total{topic=\"t\\\"2\\n\",reason=\"a\\\\b\"} 0.5\n"));
    assert_non_null(strstr(t, "process_resident_memory_bytes "));
    free(t);
}

static void test_gauge_numbers(void **state)
{
    (void)state;
    cs_series_t *g = cs_metric_at(cs_metric(CS_METRIC_GAUGE, "cs_g", "g", NULL));
    cs_series_set(g, 0.1 + 0.2);
    char *t = render();
    assert_non_null(strstr(t, "cs_g 0.30000000000000004\n")); /* reads back exactly */
    free(t);
    cs_series_set(g, 1796228470.039);
    t = render();
    assert_non_null(strstr(t, "cs_g 1796228470.039\n")); /* and no longer than that */
    free(t);
    cs_series_set(g, -3);
    t = render();
    assert_non_null(strstr(t, "cs_g -3\n"));
    free(t);
    cs_series_add(NULL, 1); /* every update takes NULL */
    cs_series_set(NULL, 1);
    cs_series_observe(NULL, 1);
}

static void test_histogram(void **state)
{
    (void)state;
    const double bounds[] = {0.1, 1};
    cs_metric_t *m = cs_metric_histogram("cs_h_seconds", "h", "job", bounds, 2);
    cs_series_t *s = cs_metric_at(m, "apply");
    cs_series_observe(s, 0.05);
    cs_series_observe(s, 0.1); /* on a bound: in it (le) */
    cs_series_observe(s, 0.5);
    cs_series_observe(s, 7);
    assert_true(cs_series_value(s) == 4);
    char *t = render();
    assert_non_null(strstr(t, "# TYPE cs_h_seconds histogram\n"));
    assert_non_null(strstr(t, "cs_h_seconds_bucket{job=\"apply\",le=\"0.1\"} 2\n"));
    assert_non_null(strstr(t, "cs_h_seconds_bucket{job=\"apply\",le=\"1\"} 3\n"));
    assert_non_null(strstr(t, "cs_h_seconds_bucket{job=\"apply\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(t, "cs_h_seconds_sum{job=\"apply\"} 7.65\n"));
    assert_non_null(strstr(t, "cs_h_seconds_count{job=\"apply\"} 4\n"));
    free(t);
}

static void test_hidden_series(void **state)
{
    (void)state;
    cs_metric_t *lag = cs_metric(CS_METRIC_GAUGE, "cs_lag", "lag", "topic,partition");
    cs_series_t *p0 = cs_metric_at(lag, "t", "0");
    cs_series_t *p1 = cs_metric_at(lag, "t", "1");
    cs_series_set(p0, 5);
    cs_series_set(p1, 7);
    cs_metric_hide_others(lag, &p1, 1);
    char *t = render();
    assert_null(strstr(t, "cs_lag{topic=\"t\",partition=\"0\"}"));
    assert_non_null(strstr(t, "cs_lag{topic=\"t\",partition=\"1\"} 7\n"));
    free(t);
    cs_metric_hide_all(lag);
    t = render();
    assert_null(strstr(t, "cs_lag")); /* a family with nothing visible: not even HELP */
    free(t);
    cs_series_set(p0, 1); /* the pointer stays valid, and setting shows it again */
    t = render();
    assert_non_null(strstr(t, "cs_lag{topic=\"t\",partition=\"0\"} 1\n"));
    free(t);
}

static void test_series_cache(void **state)
{
    (void)state;
    cs_metric_t *m = cs_metric(CS_METRIC_COUNTER, "cs_c_total", "c", "topic");
    cs_series_cache_t cache = {0};
    char names[12][8];
    for (int i = 0; i < 12; i++) {
        snprintf(names[i], sizeof(names[i]), "t%d", i);
        cs_series_add(cs_series_cached(&cache, m, names[i]), 1);
        cs_series_add(cs_series_cached(&cache, m, names[i]), 1); /* seen: the same one */
    }
    /* a full cache still answers (through the registry), and the series are the
     * family's own, whichever way they were found */
    for (int i = 0; i < 12; i++) {
        assert_true(cs_series_cached(&cache, m, names[i]) == cs_metric_at(m, names[i]));
        assert_true(cs_series_value(cs_metric_at(m, names[i])) == 2);
    }
}

static void test_health(void **state)
{
    (void)state;
    char why[160];
    assert_false(cs_health_live(1000, 30000, why, sizeof(why))); /* never turned */
    cs_health_turned(1000);
    assert_true(cs_health_live(31000, 30000, why, sizeof(why)));
    assert_false(cs_health_live(31001, 30000, why, sizeof(why)));
    assert_non_null(strstr(why, "stalled"));
    /* the assignment is required; unknown parts do not count */
    assert_false(cs_health_ready(why, sizeof(why)));
    assert_non_null(strstr(why, "assignment"));
    cs_health_set(CS_HEALTH_ASSIGNED, 1);
    assert_true(cs_health_ready(why, sizeof(why)));
    cs_health_set(CS_HEALTH_REDIS, 0);
    assert_false(cs_health_ready(why, sizeof(why)));
    assert_non_null(strstr(why, "Redis"));
    cs_health_set(CS_HEALTH_REDIS, 1);
    cs_health_set(CS_HEALTH_KAFKA, 0);
    assert_false(cs_health_ready(why, sizeof(why)));
    assert_non_null(strstr(why, "broker"));
    cs_health_set(CS_HEALTH_KAFKA, 1);
    assert_true(cs_health_ready(why, sizeof(why)));
}

static void test_listen_parse(void **state)
{
    (void)state;
    char host[64];
    int port;
    assert_int_equal(cs_config_parse_listen("127.0.0.1:9464", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9464);
    assert_int_equal(cs_config_parse_listen("[::1]:0", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(cs_config_parse_listen(":9464", host, sizeof(host), &port), 0);
    assert_string_equal(host, ""); /* every address */
    const char *bad[] = {"9464", "host:", "host:65536", "host:-1", "host:9x", "::1:80",
                         "[::1:80", "host:123456", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cs_config_parse_listen(bad[i], host, sizeof(host), &port), -1);
    /* a bad value stops the program naming the key */
    cs_config_t cfg;
    char errstr[256];
    assert_int_equal(cs_config_init(&cfg, "caresignal-score"), CS_OK);
    assert_int_equal(cs_config_set(&cfg, "metrics.listen", "nope", errstr, sizeof(errstr)),
                     CS_ERR_CONFIG);
    assert_non_null(strstr(errstr, "metrics.listen"));
    assert_int_equal(
        cs_config_set(&cfg, "metrics.listen", "127.0.0.1:0", errstr, sizeof(errstr)), CS_OK);
    assert_string_equal(cfg.metrics_listen, "127.0.0.1:0");
    cs_config_clear(&cfg);
}

/* A listen address that cannot be had says why, naming the key. */
static void test_server_listen_errors(void **state)
{
    (void)state;
    char errstr[256];
    cs_metrics_server_t *a = cs_metrics_server_start("127.0.0.1:0", 30000, errstr,
                                                     sizeof(errstr));
    assert_non_null(a);
    int port = cs_metrics_server_port(a);
    assert_true(port > 0);
    char taken[32];
    snprintf(taken, sizeof(taken), "127.0.0.1:%d", port);
    assert_null(cs_metrics_server_start(taken, 30000, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "config key 'metrics.listen'"));
    assert_non_null(strstr(errstr, "Address already in use"));
    /* TEST-NET-1: an address of no machine here */
    assert_null(cs_metrics_server_start("192.0.2.1:0", 30000, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "Cannot assign requested address"));
    cs_metrics_server_stop(a);
    /* stopped: the port is free again */
    cs_metrics_server_t *b = cs_metrics_server_start(taken, 30000, errstr, sizeof(errstr));
    assert_non_null(b);
    cs_metrics_server_stop(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_counter_and_labels, teardown),
        cmocka_unit_test_teardown(test_gauge_numbers, teardown),
        cmocka_unit_test_teardown(test_histogram, teardown),
        cmocka_unit_test_teardown(test_hidden_series, teardown),
        cmocka_unit_test_teardown(test_series_cache, teardown),
        cmocka_unit_test_teardown(test_health, teardown),
        cmocka_unit_test(test_listen_parse),
        cmocka_unit_test_teardown(test_server_listen_errors, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
