/* Unit tests of the configuration: defaults, every error path, files, kafka.* keys. */
#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caresignal/config.h"

static char errstr[512];

static void test_defaults(void **state)
{
    (void)state;
    cs_config_t cfg;
    assert_int_equal(cs_config_init(&cfg, "caresignal-score"), CS_OK);
    assert_string_equal(cfg.redis_host, "127.0.0.1");
    assert_int_equal(cfg.redis_port, 6379);
    assert_int_equal(cfg.redis_timeout_ms, 2000);
    assert_string_equal(cfg.state_namespace, "cs");
    /* the source tree's file (resolved from wherever the test runs) */
    size_t rl = strlen(cfg.rules_file), dl = strlen("deploy/config/rules.json");
    assert_true(rl >= dl &&
                !strcmp(cfg.rules_file + rl - dl, "deploy/config/rules.json"));
    assert_string_equal(cfg.topic_raw_nhse, "intel.raw.nhse");
    assert_string_equal(cfg.topic_raw_ofsted_send, "intel.raw.ofsted-send");
    assert_string_equal(cfg.topic_deadletter, "intel.deadletter");
    assert_string_equal(cfg.group_id, "caresignal-score");
    assert_int_equal(cfg.normalise_max_bytes, 65536);
    assert_int_equal(cfg.score_batch_max, 500);
    assert_string_equal(cfg.page_sink, "stdout");
    assert_int_equal(cfg.page_retries, 5);
    assert_null(cfg.redis_password);
    assert_null(cfg.directory_file);
    cs_config_clear(&cfg);
    cs_config_clear(NULL);
}

static void test_set_values(void **state)
{
    (void)state;
    cs_config_t cfg;
    cs_config_init(&cfg, "p");
    assert_int_equal(cs_config_set(&cfg, "redis.port", "7000", errstr, sizeof(errstr)),
                     CS_OK);
    assert_int_equal(cfg.redis_port, 7000);
    assert_int_equal(
        cs_config_set_pair(&cfg, " state.namespace = rebuild1 ", errstr, sizeof(errstr)),
        CS_OK);
    assert_string_equal(cfg.state_namespace, "rebuild1");
    assert_int_equal(cs_config_set(&cfg, "page.sink", "webhook", errstr, sizeof(errstr)),
                     CS_OK);
    assert_string_equal(cs_config_get_string(&cfg, "page.sink"), "webhook");
    assert_null(cs_config_get_string(&cfg, "redis.port"));
    assert_null(cfg.redis_cluster_nodes);
    assert_int_equal(cs_config_set(&cfg, "redis.cluster.nodes",
                                   "10.0.0.1:7000,[::1]:7001,redis-2.local:7002", errstr,
                                   sizeof(errstr)),
                     CS_OK);
    assert_string_equal(cfg.redis_cluster_nodes,
                        "10.0.0.1:7000,[::1]:7001,redis-2.local:7002");
    assert_null(cs_config_get_string(&cfg, "no.such.key"));
    cs_config_clear(&cfg);
}

/* Each bad value: CS_ERR_CONFIG and one line that names the key. */
static void test_bad_values_name_the_key(void **state)
{
    (void)state;
    static const struct {
        const char *key, *value, *expect;
    } cases[] = {
        {"redis.port", "abc",
         "config key 'redis.port': expected an integer from 1 to 65535, got 'abc'"},
        {"redis.port", "", "config key 'redis.port': expected an integer"},
        {"redis.port", "70000", "config key 'redis.port': expected an integer"},
        {"redis.port", "0", "config key 'redis.port': expected an integer"},
        {"redis.port", "12x", "config key 'redis.port': expected an integer"},
        {"score.batch.max", "99999999999999999999", "config key 'score.batch.max'"},
        {"normalise.max.bytes", "-5", "config key 'normalise.max.bytes'"},
        {"page.sink", "email",
         "config key 'page.sink': expected one of stdout|webhook|exec, got 'email'"},
        {"log.level", "verbose", "config key 'log.level': expected one of"},
        {"no.such.key", "1", "config key 'no.such.key': unknown key"},
        {"redis.hots", "x", "config key 'redis.hots': unknown key"},
        {"kafka.no.such.property", "1",
         "config key 'kafka.no.such.property': No such configuration property"},
        {"kafka.acks", "banana", "config key 'kafka.acks':"},
        {"kafka.", "x", "config key 'kafka.': missing property name"},
        {"redis.cluster.nodes", "",
         "config key 'redis.cluster.nodes': expected host:port"},
        {"redis.cluster.nodes", "127.0.0.1", "config key 'redis.cluster.nodes'"},
        {"redis.cluster.nodes", "127.0.0.1:7000,", "config key 'redis.cluster.nodes'"},
        {"redis.cluster.nodes", "a:7000,,b:7001", "config key 'redis.cluster.nodes'"},
        {"redis.cluster.nodes", "a:0", "config key 'redis.cluster.nodes'"},
        {"redis.cluster.nodes", ":7000", "config key 'redis.cluster.nodes'"},
        {"redis.cluster.nodes", "::1:7000", "config key 'redis.cluster.nodes'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cs_config_t cfg;
        cs_config_init(&cfg, "p");
        errstr[0] = '\0';
        cs_err_t err =
            cs_config_set(&cfg, cases[i].key, cases[i].value, errstr, sizeof(errstr));
        if (err != CS_ERR_CONFIG ||
            strncmp(errstr, cases[i].expect, strlen(cases[i].expect)))
            fail_msg("case %zu (%s=%s): err %d, errstr '%s'", i, cases[i].key,
                     cases[i].value, err, errstr);
        assert_null(strchr(errstr, '\n'));
        cs_config_clear(&cfg);
    }
}

static void test_set_pair_without_equals(void **state)
{
    (void)state;
    cs_config_t cfg;
    cs_config_init(&cfg, "p");
    assert_int_equal(cs_config_set_pair(&cfg, "redis.port", errstr, sizeof(errstr)),
                     CS_ERR_CONFIG);
    assert_string_equal(errstr, "config key 'redis.port': expected key=value");
    cs_config_clear(&cfg);
}

/* Writes \p text to a new temporary file; @returns its path (static buffer). */
static const char *temp_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/cs-test-secret-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* Every secret has a .file form (docs/contract/configuration.md): systemd credentials,
 * Kubernetes secrets. */
static void test_secret_file_forms(void **state)
{
    (void)state;
    cs_config_t cfg;
    cs_config_init(&cfg, "p");
    const char *path = temp_file("S3cret-file-canary\n");
    assert_int_equal(
        cs_config_set(&cfg, "redis.password.file", path, errstr, sizeof(errstr)), CS_OK);
    assert_string_equal(cfg.redis_password, "S3cret-file-canary");
    assert_null(cs_config_get_string(&cfg, "redis.password.file")); /* never the secret */
    unlink(path);
    path = temp_file("hook-key\r\n");
    assert_int_equal(
        cs_config_set(&cfg, "page.webhook.secret.file", path, errstr, sizeof(errstr)),
        CS_OK);
    assert_string_equal(cfg.page_webhook_secret, "hook-key");
    unlink(path);
    path = temp_file("sasl-canary");
    assert_int_equal(
        cs_config_set(&cfg, "kafka.sasl.password.file", path, errstr, sizeof(errstr)),
        CS_OK);
    assert_string_equal(cs_config_kafka_get(&cfg, "sasl.password"), "sasl-canary");
    unlink(path);
    /* errors name the key and the file, never the content */
    assert_int_equal(cs_config_set(&cfg, "redis.password.file", "/nonexistent/pw", errstr,
                                   sizeof(errstr)),
                     CS_ERR_CONFIG);
    assert_non_null(strstr(errstr, "config key 'redis.password.file': cannot read"));
    path = temp_file("");
    assert_int_equal(
        cs_config_set(&cfg, "redis.password.file", path, errstr, sizeof(errstr)),
        CS_ERR_CONFIG);
    assert_non_null(strstr(errstr, "is empty"));
    unlink(path);
    assert_int_equal(cs_config_set(&cfg, "kafka.no.such.prop.file", "/etc/hostname",
                                   errstr, sizeof(errstr)),
                     CS_ERR_CONFIG);
    cs_config_clear(&cfg);
    assert_true(cs_config_key_is_secret("redis.password"));
    assert_true(cs_config_key_is_secret("page.webhook.secret.file"));
    assert_true(cs_config_key_is_secret("kafka.sasl.password"));
    assert_false(cs_config_key_is_secret("redis.host"));
    assert_false(cs_config_key_is_secret("kafka.bootstrap.servers"));
}

/* Regression: a malformed "--set redis.passwordX" (a forgotten '=') echoed the secret in
 * its error. An unknown key or a pair without '=' is shown only up to the secret key's
 * name, and a refused kafka secret is never shown. */
static void test_regression_secret_never_echoed(void **state)
{
    (void)state;
    cs_config_t cfg;
    cs_config_init(&cfg, "p");
    assert_int_equal(
        cs_config_set_pair(&cfg, "redis.passwordHUNTER2", errstr, sizeof(errstr)),
        CS_ERR_CONFIG);
    assert_null(strstr(errstr, "HUNTER2"));
    assert_string_equal(errstr, "config key 'redis.password...': expected key=value");
    assert_int_equal(
        cs_config_set_pair(&cfg, "redis.passwordHUNTER2=x", errstr, sizeof(errstr)),
        CS_ERR_CONFIG);
    assert_null(strstr(errstr, "HUNTER2"));
    assert_int_equal(
        cs_config_set_pair(&cfg, "kafka.sasl.passwordHUNTER2", errstr, sizeof(errstr)),
        CS_ERR_CONFIG);
    assert_null(strstr(errstr, "HUNTER2"));
    assert_int_equal(
        cs_config_set_pair(&cfg, "page.webhook.secretHUNTER2=1", errstr, sizeof(errstr)),
        CS_ERR_CONFIG);
    assert_null(strstr(errstr, "HUNTER2"));
    /* an ordinary unknown key is still shown whole */
    assert_int_equal(cs_config_set_pair(&cfg, "redis.hots=x", errstr, sizeof(errstr)),
                     CS_ERR_CONFIG);
    assert_string_equal(errstr, "config key 'redis.hots': unknown key");
    cs_config_clear(&cfg);
}

static void test_kafka_passthrough(void **state)
{
    (void)state;
    cs_config_t cfg;
    cs_config_init(&cfg, "p");
    assert_null(cs_config_kafka_get(&cfg, "bootstrap.servers"));
    assert_int_equal(cs_config_set(&cfg, "kafka.bootstrap.servers", "127.0.0.1:9092",
                                   errstr, sizeof(errstr)),
                     CS_OK);
    assert_int_equal(
        cs_config_set(&cfg, "kafka.security.protocol", "ssl", errstr, sizeof(errstr)),
        CS_OK);
    assert_int_equal(
        cs_config_set(&cfg, "kafka.bootstrap.servers", "h:1", errstr, sizeof(errstr)),
        CS_OK);
    assert_int_equal(cfg.kafka_cnt, 2);
    assert_string_equal(cs_config_kafka_get(&cfg, "bootstrap.servers"), "h:1");
    assert_string_equal(cs_config_get_string(&cfg, "kafka.security.protocol"), "ssl");
    cs_config_clear(&cfg);
}

static void test_file_ok(void **state)
{
    (void)state;
    const char *path = cs_test_write_temp("# a comment\n"
                                          "! another comment\n"
                                          "\n"
                                          "   redis.host =  10.0.0.5  \n"
                                          "redis.port=6380\n"
                                          "kafka.bootstrap.servers=a:1,b:2\n"
                                          "page.exec.command=notify --to=oncall\n");
    cs_config_t cfg;
    cs_config_init(&cfg, "p");
    assert_int_equal(cs_config_load_file(&cfg, path, errstr, sizeof(errstr)), CS_OK);
    assert_string_equal(cfg.redis_host, "10.0.0.5");
    assert_int_equal(cfg.redis_port, 6380);
    assert_string_equal(cs_config_kafka_get(&cfg, "bootstrap.servers"), "a:1,b:2");
    assert_string_equal(cfg.page_exec_command, "notify --to=oncall");
    cs_config_clear(&cfg);
    unlink(path);
}

static void test_file_errors(void **state)
{
    (void)state;
    cs_config_t cfg;
    cs_config_init(&cfg, "p");
    assert_int_equal(
        cs_config_load_file(&cfg, "/nonexistent/cs.properties", errstr, sizeof(errstr)),
        CS_ERR_CONFIG);
    assert_string_equal(errstr, "config file '/nonexistent/cs.properties': cannot read: "
                                "No such file or directory");

    const char *path = cs_test_write_temp("redis.port=1\njust some words\n");
    assert_int_equal(cs_config_load_file(&cfg, path, errstr, sizeof(errstr)),
                     CS_ERR_CONFIG);
    assert_non_null(strstr(errstr, "line 2: expected key=value"));
    unlink(path);

    path = cs_test_write_temp("\n\nscore.batch.max=lots\n");
    assert_int_equal(cs_config_load_file(&cfg, path, errstr, sizeof(errstr)),
                     CS_ERR_CONFIG);
    assert_non_null(strstr(errstr, "config key 'score.batch.max'"));
    assert_non_null(strstr(errstr, "line 3)"));
    unlink(path);

    path = cs_test_write_temp("redis.colour=blue\n");
    assert_int_equal(cs_config_load_file(&cfg, path, errstr, sizeof(errstr)),
                     CS_ERR_CONFIG);
    assert_non_null(strstr(errstr, "config key 'redis.colour': unknown key"));
    unlink(path);

    assert_int_equal(cs_config_load_file(&cfg, "/", errstr, sizeof(errstr)),
                     CS_ERR_CONFIG);
    assert_non_null(strstr(errstr, "config file '/'"));
    cs_config_clear(&cfg);
}

static void test_required(void **state)
{
    (void)state;
    cs_config_t cfg;
    cs_config_init(&cfg, "p");
    assert_int_equal(
        cs_config_check_required(&cfg, CS_PROG_SCORE, errstr, sizeof(errstr)),
        CS_ERR_CONFIG);
    assert_string_equal(errstr,
                        "config key 'kafka.bootstrap.servers': required, not set");
    assert_int_equal(
        cs_config_check_required(&cfg, CS_PROG_DEVBROKER, errstr, sizeof(errstr)), CS_OK);
    cs_config_set(&cfg, "kafka.bootstrap.servers", "h:1", errstr, sizeof(errstr));
    assert_int_equal(
        cs_config_check_required(&cfg, CS_PROG_SCORE, errstr, sizeof(errstr)), CS_OK);
    assert_int_equal(
        cs_config_check_required(&cfg, CS_PROG_NORMALISE, errstr, sizeof(errstr)),
        CS_ERR_CONFIG);
    assert_string_equal(errstr, "config key 'directory.file': required, not set");
    cs_config_set(&cfg, "directory.file", "", errstr, sizeof(errstr));
    assert_int_equal(
        cs_config_check_required(&cfg, CS_PROG_NORMALISE, errstr, sizeof(errstr)),
        CS_ERR_CONFIG);
    cs_config_set(&cfg, "directory.file", "d.csv", errstr, sizeof(errstr));
    assert_int_equal(
        cs_config_check_required(&cfg, CS_PROG_NORMALISE, errstr, sizeof(errstr)), CS_OK);
    cs_config_clear(&cfg);
}

static void test_help_lists_keys(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cs_config_print_help(f, CS_PROG_SCORE);
    fclose(f);
    assert_non_null(strstr(buf, "score.batch.max"));
    assert_non_null(strstr(buf, "kafka.<property>"));
    assert_null(strstr(buf, "page.webhook.url"));
    free(buf);
    /* every key has a description and is used by some program */
    for (const cs_config_key_t *k = cs_config_keys(); k->name; k++) {
        assert_true(k->description && *k->description);
        assert_true(k->uses != 0);
    }
}

/* The README's key list and the table must not drift apart. */
static void test_readme_documents_every_key(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof(path), "%s/README.md", cs_test_source_dir());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    assert_true(n > 0);
    for (const cs_config_key_t *k = cs_config_keys(); k->name; k++) {
        char needle[128];
        snprintf(needle, sizeof(needle), "`%s`", k->name);
        if (!strstr(text, needle))
            fail_msg("README.md does not document config key %s", k->name);
    }
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_set_values),
        cmocka_unit_test(test_bad_values_name_the_key),
        cmocka_unit_test(test_set_pair_without_equals),
        cmocka_unit_test(test_kafka_passthrough),
        cmocka_unit_test(test_secret_file_forms),
        cmocka_unit_test(test_regression_secret_never_echoed),
        cmocka_unit_test(test_file_ok),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_help_lists_keys),
        cmocka_unit_test(test_readme_documents_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
