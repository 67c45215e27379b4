/* Unit tests of the devbroker's control protocol (deploy/dev/devbroker_control.c) against
 * a real in-process mock cluster: valid and invalid commands, the status they leave,
 * the name tables, and the log line of each injected fault. */
#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caresignal/log.h"
#include "devbroker_control.h"

typedef struct fixture {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    cs_devctl_t *ctl;
    FILE *log;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr));
    f->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(f->rk);
    f->mc = rd_kafka_mock_cluster_new(f->rk, 3);
    assert_non_null(f->mc);
    assert_int_equal(rd_kafka_mock_topic_create(f->mc, "t", 2, 1), 0);
    f->ctl = cs_devctl_new(f->mc, 3);
    assert_non_null(f->ctl);
    f->log = tmpfile();
    cs_log_set_output(f->log);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    cs_log_set_output(NULL);
    fclose(f->log);
    cs_devctl_destroy(f->ctl);
    rd_kafka_mock_cluster_destroy(f->mc);
    rd_kafka_destroy(f->rk);
    free(f);
    return 0;
}

typedef struct ctl_case {
    const char *line;
    cs_err_t want;
    const char *reply; /* a substring the reply must hold */
} ctl_case_t;

static void run_cases(fixture_t *f, const ctl_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char reply[CS_DEVCTL_REPLY_MAX];
        cs_err_t r = cs_devctl_exec(f->ctl, cases[i].line, reply, sizeof(reply));
        if (r != cases[i].want || !strstr(reply, cases[i].reply))
            fail_msg("case %zu '%s': expected %d with '%s', got %d: '%s'", i,
                     cases[i].line, cases[i].want, cases[i].reply, r, reply);
        if (strncmp(reply, r ? "error " : "ok ", r ? 6 : 3))
            fail_msg("case %zu '%s': reply does not start right: '%s'", i, cases[i].line,
                     reply);
        if (strchr(reply, '\n'))
            fail_msg("case %zu '%s': reply spans lines", i, cases[i].line);
    }
}

#define RUN(f, cases) run_cases(f, cases, sizeof(cases) / sizeof(cases[0]))

static void test_valid_commands(void **state)
{
    static const ctl_case_t cases[] = {
        {"down 2", CS_OK, "broker 2 down"},
        {"up 2", CS_OK, "broker 2 up"},
        {"down all", CS_OK, "all 3 brokers down"},
        {"up ALL", CS_OK, "all 3 brokers up"},
        {"  rtt   1\t250 ", CS_OK, "broker 1 rtt 250 ms"},
        {"rtt all 0", CS_OK, "all 3 brokers rtt 0 ms"},
        {"errors Produce 3 NOT_LEADER_FOR_PARTITION", CS_OK,
         "next 3 Produce requests fail with NOT_LEADER_FOR_PARTITION"},
        {"errors joingroup 2 COORDINATOR_NOT_AVAILABLE,RD_KAFKA_RESP_ERR_NOT_COORDINATOR",
         CS_OK, "next 2 JoinGroup requests"},
        {"errors Fetch 1 _TRANSPORT", CS_OK, "Fetch"},
        {"errors ApiVersions 1 no_error", CS_OK, "ApiVersions"},
        {"broker-errors 3 Produce 2 REQUEST_TIMED_OUT 100", CS_OK,
         "next 2 Produce requests to broker 3 fail with REQUEST_TIMED_OUT after 100 ms"},
        {"clear Produce", CS_OK, "Produce errors queued by 'errors' cleared"},
        {"clear Metadata", CS_OK, "Metadata"},
        {"leader t 1 3", CS_OK, "t [1] leader is broker 3"},
        {"leader t 0 none", CS_OK, "t [0] has no leader"},
        {"topic-error t UNKNOWN_TOPIC_OR_PART", CS_OK,
         "Metadata answers topic t with UNKNOWN_TOPIC_OR_PART"},
        {"topic-error t NO_ERROR", CS_OK, "topic t has no error"},
        {"coordinator group g1 2", CS_OK, "group g1: coordinator is broker 2"},
        {"coordinator transaction tx 1", CS_OK, "coordinator is broker 1"},
        {"help", CS_OK, "commands: down <broker-id|all>; up"},
    };
    RUN(*state, cases);
}

static void test_invalid_commands(void **state)
{
    static const ctl_case_t cases[] = {
        {"", CS_ERR_INVALID_ARG, "empty command"},
        {" \t ", CS_ERR_INVALID_ARG, "empty command"},
        {"frobnicate", CS_ERR_INVALID_ARG, "unknown command 'frobnicate'"},
        {"DOWN 1", CS_ERR_INVALID_ARG, "unknown command"},
        {"down", CS_ERR_INVALID_ARG, "usage: down <broker-id|all>"},
        {"down 1 2", CS_ERR_INVALID_ARG, "usage: down"},
        {"down 0", CS_ERR_INVALID_ARG, "expected an id from 1 to 3 or all, got '0'"},
        {"down 4", CS_ERR_INVALID_ARG, "got '4'"},
        {"down -1", CS_ERR_INVALID_ARG, "got '-1'"},
        {"up x", CS_ERR_INVALID_ARG, "got 'x'"},
        {"rtt 1", CS_ERR_INVALID_ARG, "usage: rtt"},
        {"rtt 1 -5", CS_ERR_INVALID_ARG, "rtt ms: expected 0 to 3600000, got '-5'"},
        {"rtt 1 3600001", CS_ERR_INVALID_ARG, "rtt ms"},
        {"rtt 1 10ms", CS_ERR_INVALID_ARG, "got '10ms'"},
        {"errors Produce 3", CS_ERR_INVALID_ARG, "usage: errors <ApiName>"},
        {"errors Produec 3 NOT_LEADER_FOR_PARTITION", CS_ERR_INVALID_ARG,
         "unknown Kafka API 'Produec'"},
        {"errors Produce 0 NOT_LEADER_FOR_PARTITION", CS_ERR_INVALID_ARG,
         "count: expected 1 to 10000, got '0'"},
        {"errors Produce 10001 NOT_LEADER_FOR_PARTITION", CS_ERR_INVALID_ARG, "count"},
        {"errors Produce 3 NOT_A_LEADER", CS_ERR_INVALID_ARG,
         "unknown error name 'NOT_A_LEADER'"},
        {"errors Produce 3 NOT_LEADER_FOR_PARTITION,", CS_ERR_INVALID_ARG,
         "unknown error name ''"},
        {"errors Produce 1 NOT_LEADER_FOR_PARTITION,REQUEST_TIMED_OUT",
         CS_ERR_INVALID_ARG, "2 error names for a count of 1 requests"},
        {"errors Produce 1 _MSG_TIMED_OUT", CS_ERR_INVALID_ARG, "local librdkafka error"},
        {"errors Metadata 1 LEADER_NOT_AVAILABLE", CS_ERR_INVALID_ARG,
         "never fails Metadata requests with injected errors; use topic-error"},
        {"errors DescribeGroups 1 COORDINATOR_NOT_AVAILABLE", CS_ERR_INVALID_ARG,
         "does not serve this API"},
        {"broker-errors all Produce 1 REQUEST_TIMED_OUT 0", CS_ERR_INVALID_ARG,
         "expected an id from 1 to 3, got 'all'"},
        {"broker-errors 1 Produce 1 REQUEST_TIMED_OUT", CS_ERR_INVALID_ARG,
         "usage: broker-errors"},
        {"broker-errors 1 Produce 1 REQUEST_TIMED_OUT soon", CS_ERR_INVALID_ARG,
         "rtt ms"},
        {"clear Nothing", CS_ERR_INVALID_ARG, "unknown Kafka API 'Nothing'"},
        {"leader t 2 1", CS_ERR_INVALID_ARG, "topic t has no partition 2"},
        {"leader t -1 1", CS_ERR_INVALID_ARG, "partition: expected 0 to 100000"},
        {"leader t 0 9", CS_ERR_INVALID_ARG, "got '9'"},
        {"leader bad/topic 0 1", CS_ERR_INVALID_ARG, "topic: expected 1 to 249"},
        {"topic-error t _TRANSPORT", CS_ERR_INVALID_ARG, "must be a broker error"},
        {"coordinator consumer g 1", CS_ERR_INVALID_ARG, "expected group or transaction"},
        {"status now", CS_ERR_INVALID_ARG, "usage: status"},
        {"a b c d e f g h i", CS_ERR_INVALID_ARG, "more than 8 words"},
        {"down \x01\xff", CS_ERR_INVALID_ARG, "got '?\?'"},
    };
    RUN(*state, cases);
}

static void test_status_reflects_state(void **state)
{
    fixture_t *f = *state;
    char reply[CS_DEVCTL_REPLY_MAX];
    assert_int_equal(cs_devctl_exec(f->ctl, "status", reply, sizeof(reply)), CS_OK);
    assert_string_equal(reply,
                        "ok {\"broker_count\":3,\"down\":[],\"brokers\":["
                        "{\"id\":1,\"down\":false,\"rtt_ms\":0,\"pending_errors\":{},"
                        "\"ignores_errors_for\":[]},"
                        "{\"id\":2,\"down\":false,\"rtt_ms\":0,\"pending_errors\":{},"
                        "\"ignores_errors_for\":[]},"
                        "{\"id\":3,\"down\":false,\"rtt_ms\":0,\"pending_errors\":{},"
                        "\"ignores_errors_for\":[]}]}");
    assert_int_equal(cs_devctl_exec(f->ctl, "down 3", reply, sizeof(reply)), CS_OK);
    assert_int_equal(cs_devctl_exec(f->ctl, "rtt 2 300", reply, sizeof(reply)), CS_OK);
    assert_int_equal(cs_devctl_exec(f->ctl, "broker-errors 1 Fetch 2 NO_ERROR 10", reply,
                                    sizeof(reply)),
                     CS_OK);
    assert_int_equal(cs_devctl_exec(f->ctl, "status", reply, sizeof(reply)), CS_OK);
    assert_non_null(strstr(reply, "\"down\":[3]"));
    assert_non_null(strstr(reply, "{\"id\":1,\"down\":false,\"rtt_ms\":0,"
                                  "\"pending_errors\":{\"Fetch\":2},"
                                  "\"ignores_errors_for\":[\"Fetch\"]}"));
    assert_non_null(strstr(reply, "{\"id\":2,\"down\":false,\"rtt_ms\":300,"));
    assert_non_null(strstr(reply, "{\"id\":3,\"down\":true,\"rtt_ms\":0,"));
    assert_int_equal(cs_devctl_exec(f->ctl, "up all", reply, sizeof(reply)), CS_OK);
    assert_int_equal(cs_devctl_exec(f->ctl, "status", reply, sizeof(reply)), CS_OK);
    assert_non_null(strstr(reply, "\"down\":[]"));
}

/* librdkafka 2.0.2: a broker with a queue of its own for an API (broker-errors), even
 * an empty one, never takes the cluster-wide errors of that API again: say so. */
static void test_errors_warn_of_brokers_with_their_own_queue(void **state)
{
    fixture_t *f = *state;
    char reply[CS_DEVCTL_REPLY_MAX];
    assert_int_equal(cs_devctl_exec(f->ctl, "errors Produce 1 REQUEST_TIMED_OUT", reply,
                                    sizeof(reply)),
                     CS_OK);
    assert_string_equal(reply,
                        "ok the next 1 Produce requests fail with REQUEST_TIMED_OUT");
    assert_int_equal(cs_devctl_exec(f->ctl, "broker-errors 2 Produce 1 NO_ERROR 0", reply,
                                    sizeof(reply)),
                     CS_OK);
    assert_int_equal(cs_devctl_exec(f->ctl, "broker-errors 3 Produce 1 NO_ERROR 0", reply,
                                    sizeof(reply)),
                     CS_OK);
    assert_int_equal(cs_devctl_exec(f->ctl, "errors Produce 1 REQUEST_TIMED_OUT", reply,
                                    sizeof(reply)),
                     CS_OK);
    assert_non_null(strstr(reply, "except those to broker 2,3: after broker-errors for "
                                  "Produce the mock answers them only from that "
                                  "broker's own queue"));
    /* another API is not affected */
    assert_int_equal(
        cs_devctl_exec(f->ctl, "errors Fetch 1 REQUEST_TIMED_OUT", reply, sizeof(reply)),
        CS_OK);
    assert_null(strstr(reply, "except"));
}

static void test_each_fault_is_logged(void **state)
{
    fixture_t *f = *state;
    char reply[CS_DEVCTL_REPLY_MAX], line[4096];
    rewind(f->log);
    assert_int_equal(ftruncate(fileno(f->log), 0), 0);
    cs_devctl_exec(f->ctl, "errors Produce 3 NOT_LEADER_FOR_PARTITION", reply,
                   sizeof(reply));
    cs_devctl_exec(f->ctl, "status", reply, sizeof(reply)); /* not a fault: no line */
    cs_devctl_exec(f->ctl, " down   7 ", reply, sizeof(reply));
    rewind(f->log);
    assert_non_null(fgets(line, sizeof(line), f->log));
    assert_non_null(strstr(line, "\"msg\":\"fault injected\""));
    assert_non_null(strstr(line, "\"fault\":\"errors\""));
    assert_non_null(
        strstr(line, "\"command\":\"errors Produce 3 NOT_LEADER_FOR_PARTITION\""));
    assert_non_null(fgets(line, sizeof(line), f->log));
    assert_non_null(strstr(line, "\"msg\":\"control command refused\""));
    assert_non_null(strstr(line, "\"command\":\"down 7\""));
    assert_null(fgets(line, sizeof(line), f->log));
}

static void test_name_tables(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int key;
    } apis[] = {
        {"Produce", 0},
        {"Fetch", 1},
        {"ListOffsets", 2},
        {"Metadata", 3},
        {"OffsetCommit", 8},
        {"OffsetFetch", 9},
        {"FindCoordinator", 10},
        {"JoinGroup", 11},
        {"Heartbeat", 12},
        {"LeaveGroup", 13},
        {"SyncGroup", 14},
        {"DescribeGroups", 15},
        {"ListGroups", 16},
        {"SaslHandshake", 17},
        {"ApiVersions", 18},
        {"CreateTopics", 19},
        {"DeleteTopics", 20},
        {"InitProducerId", 22},
        {"AddPartitionsToTxn", 24},
        {"AddOffsetsToTxn", 25},
        {"EndTxn", 26},
        {"TxnOffsetCommit", 28},
        {"DescribeConfigs", 32},
        {"SaslAuthenticate", 36},
        {"OffsetDelete", 47},
        {"produce", 0},
        {"Nope", -1},
        {"", -1},
    };
    for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++)
        if (cs_devctl_api_key(apis[i].name) != apis[i].key)
            fail_msg("api %s: expected %d, got %d", apis[i].name, apis[i].key,
                     cs_devctl_api_key(apis[i].name));

    rd_kafka_resp_err_t err;
    assert_int_equal(cs_devctl_error_code("NOT_LEADER_FOR_PARTITION", &err), CS_OK);
    assert_int_equal(err, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
    assert_int_equal(cs_devctl_error_code("RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT", &err),
                     CS_OK);
    assert_int_equal(err, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    assert_int_equal(cs_devctl_error_code("coordinator_not_available", &err), CS_OK);
    assert_int_equal(err, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);
    assert_int_equal(cs_devctl_error_code("_TRANSPORT", &err), CS_OK);
    assert_int_equal(err, RD_KAFKA_RESP_ERR__TRANSPORT);
    assert_int_equal(cs_devctl_error_code("NO_ERROR", &err), CS_OK);
    assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(cs_devctl_error_code("TRANSPORT", &err), CS_ERR_NOT_FOUND);
    assert_int_equal(cs_devctl_error_code("", &err), CS_ERR_NOT_FOUND);
    assert_int_equal(cs_devctl_error_code("RD_KAFKA_RESP_ERR_", &err), CS_ERR_NOT_FOUND);
}

static void test_help_text(void **state)
{
    (void)state;
    char buf[8192];
    cs_devctl_help(buf, sizeof(buf));
    static const char *const cmds[] = {"down <broker-id|all>",
                                       "up <broker-id|all>",
                                       "rtt <broker-id|all> <ms>",
                                       "errors <ApiName>",
                                       "broker-errors <broker-id>",
                                       "clear <ApiName>",
                                       "leader <topic> <partition>",
                                       "topic-error <topic>",
                                       "coordinator <group|transaction>",
                                       "status",
                                       "help",
                                       "e.g. errors Produce 3"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (!strstr(buf, cmds[i]))
            fail_msg("--help text lacks '%s'", cmds[i]);
    char small[40];
    cs_devctl_help(small, sizeof(small)); /* truncates, never overflows */
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_reflects_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_warn_of_brokers_with_their_own_queue,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_fault_is_logged, setup, teardown),
        cmocka_unit_test(test_name_tables),
        cmocka_unit_test(test_help_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
