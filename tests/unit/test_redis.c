/* Tests of the Redis helper against a real, throwaway redis-server. */
#include "testenv.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "caresignal/log.h"
#include "caresignal/redis.h"

static cs_test_redis_t server;
static char errstr[512];

static const char *lib_code =
    "#!lua name=cstest\n"
    "redis.register_function('cstest_incr', function(keys, args)\n"
    "  return redis.call('INCRBY', keys[1], args[1])\n"
    "end)\n";

static int group_setup(void **state)
{
    (void)state;
    cs_log_init("test_redis", CS_LOG_FATAL);
    return cs_test_redis_start(&server);
}

static int group_teardown(void **state)
{
    (void)state;
    cs_test_redis_stop(&server);
    return 0;
}

static cs_redis_t *connected(void)
{
    cs_redis_t *r = cs_redis_new("127.0.0.1", server.port, NULL, 1000);
    assert_non_null(r);
    assert_int_equal(cs_redis_connect(r, errstr, sizeof(errstr)), CS_OK);
    return r;
}

static long long integer_of(cs_redis_t *r, int argc, const char **argv)
{
    redisReply *reply = cs_redis_command(r, argc, argv, NULL, errstr, sizeof(errstr));
    assert_non_null(reply);
    if (reply->type != REDIS_REPLY_INTEGER)
        fail_msg("expected integer, got type %d (%s)", reply->type,
                 reply->str ? reply->str : "");
    long long v = reply->integer;
    freeReplyObject(reply);
    return v;
}

static void test_function_load_and_fcall(void **state)
{
    (void)state;
    cs_redis_t *r = connected();
    assert_int_equal(cs_redis_function_load(r, lib_code, errstr, sizeof(errstr)), CS_OK);
    const char *argv[] = {"FCALL", "cstest_incr", "1", "t:fcall", "5"};
    assert_int_equal(integer_of(r, 5, argv), 5);
    assert_int_equal(integer_of(r, 5, argv), 10);
    cs_redis_destroy(r);
}

static void test_bad_library_is_fatal(void **state)
{
    (void)state;
    cs_redis_t *r = connected();
    assert_int_equal(cs_redis_function_load(r, "#!lua name=broken\nthis is not lua",
                                            errstr, sizeof(errstr)),
                     CS_ERR_FATAL);
    assert_non_null(strstr(errstr, "FUNCTION LOAD"));
    cs_redis_destroy(r);
}

static void test_pipeline(void **state)
{
    (void)state;
    cs_redis_t *r = connected();
    assert_int_equal(cs_redis_function_load(r, lib_code, errstr, sizeof(errstr)), CS_OK);
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    const char *del[] = {"DEL", "t:pipe"};
    redisReply *reply = cs_redis_command(r, 2, del, NULL, errstr, sizeof(errstr));
    freeReplyObject(reply);
    for (int i = 0; i < 1000; i++) {
        const char *argv[] = {"FCALL", "cstest_incr", "1", "t:pipe", "1"};
        assert_int_equal(cs_redis_pipe_add(p, 5, argv, NULL), CS_OK);
    }
    assert_int_equal(cs_redis_pipe_count(p), 1000);
    assert_int_equal(cs_redis_pipe_exec(r, p, errstr, sizeof(errstr)), CS_OK);
    assert_int_equal(cs_redis_pipe_reply(p, 999)->integer, 1000);
    assert_null(cs_redis_pipe_reply(p, 1000));
    /* binary-safe arguments */
    cs_redis_pipe_reset(p);
    const char *set[] = {"SET", "t:bin", "a\0b"};
    size_t lens[] = {3, 5, 3};
    cs_redis_pipe_add(p, 3, set, lens);
    const char *get[] = {"GET", "t:bin"};
    cs_redis_pipe_add(p, 2, get, NULL);
    assert_int_equal(cs_redis_pipe_exec(r, p, errstr, sizeof(errstr)), CS_OK);
    assert_int_equal(cs_redis_pipe_reply(p, 1)->len, 3);
    assert_memory_equal(cs_redis_pipe_reply(p, 1)->str, "a\0b", 3);
    cs_redis_pipe_destroy(p);
    cs_redis_destroy(r);
}

/* A dropped connection discards the replies; reconnecting and executing again sends
 * the same commands in full. */
static void test_reconnect_resends_pipeline(void **state)
{
    (void)state;
    cs_redis_t *r = connected();
    assert_int_equal(cs_redis_function_load(r, lib_code, errstr, sizeof(errstr)), CS_OK);
    cs_redis_t *admin = connected();
    const char *del[] = {"DEL", "t:re"};
    freeReplyObject(cs_redis_command(admin, 2, del, NULL, errstr, sizeof(errstr)));

    cs_redis_pipe_t *p = cs_redis_pipe_new();
    const char *argv[] = {"FCALL", "cstest_incr", "1", "t:re", "1"};
    cs_redis_pipe_add(p, 5, argv, NULL);
    cs_redis_pipe_add(p, 5, argv, NULL);

    const char *kill[] = {"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"};
    assert_int_equal(integer_of(admin, 6, kill), 1);
    assert_int_equal(cs_redis_pipe_exec(r, p, errstr, sizeof(errstr)), CS_ERR_RETRY);
    assert_false(cs_redis_connected(r));
    assert_null(cs_redis_pipe_reply(p, 0));
    assert_int_equal(cs_redis_connect_retry(r, 5000, errstr, sizeof(errstr)), CS_OK);
    assert_int_equal(cs_redis_pipe_exec(r, p, errstr, sizeof(errstr)), CS_OK);
    assert_int_equal(cs_redis_pipe_count(p), 2);
    assert_int_equal(cs_redis_pipe_reply(p, 1)->integer, 2);
    cs_redis_pipe_destroy(p);
    cs_redis_destroy(admin);
    cs_redis_destroy(r);
}

/* FUNCTION FLUSH behind our back: the next exec reloads the library and succeeds. */
static void test_missing_function_is_reloaded(void **state)
{
    (void)state;
    cs_redis_t *r = connected();
    assert_int_equal(cs_redis_function_load(r, lib_code, errstr, sizeof(errstr)), CS_OK);
    const char *flush[] = {"FUNCTION", "FLUSH"};
    freeReplyObject(cs_redis_command(r, 2, flush, NULL, errstr, sizeof(errstr)));
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    const char *argv[] = {"FCALL", "cstest_incr", "1", "t:reload", "7"};
    cs_redis_pipe_add(p, 5, argv, NULL);
    assert_int_equal(cs_redis_pipe_exec(r, p, errstr, sizeof(errstr)), CS_OK);
    assert_int_equal(cs_redis_pipe_reply(p, 0)->type, REDIS_REPLY_INTEGER);
    cs_redis_pipe_destroy(p);
    cs_redis_destroy(r);
}

static void test_auth(void **state)
{
    (void)state;
    cs_redis_t *admin = connected();
    const char *setpw[] = {"CONFIG", "SET", "requirepass", "s3cret"};
    freeReplyObject(cs_redis_command(admin, 4, setpw, NULL, errstr, sizeof(errstr)));

    cs_redis_t *none = cs_redis_new("127.0.0.1", server.port, NULL, 1000);
    assert_int_equal(cs_redis_connect(none, errstr, sizeof(errstr)), CS_OK);
    const char *ping[] = {"PING"};
    redisReply *reply = cs_redis_command(none, 1, ping, NULL, errstr, sizeof(errstr));
    assert_int_equal(reply->type, REDIS_REPLY_ERROR); /* NOAUTH */
    freeReplyObject(reply);

    cs_redis_t *wrong = cs_redis_new("127.0.0.1", server.port, "nope", 1000);
    /* a wrong password is the configuration's: exit 2 naming the key, no restart */
    assert_int_equal(cs_redis_connect(wrong, errstr, sizeof(errstr)), CS_ERR_CONFIG);
    assert_non_null(strstr(errstr, "AUTH refused"));
    assert_non_null(strstr(errstr, "config key 'redis.password'"));
    assert_null(strstr(errstr, "nope"));

    cs_redis_t *right = cs_redis_new("127.0.0.1", server.port, "s3cret", 1000);
    assert_int_equal(cs_redis_connect(right, errstr, sizeof(errstr)), CS_OK);
    reply = cs_redis_command(right, 1, ping, NULL, errstr, sizeof(errstr));
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    const char *clearpw[] = {"CONFIG", "SET", "requirepass", ""};
    freeReplyObject(cs_redis_command(right, 4, clearpw, NULL, errstr, sizeof(errstr)));
    cs_redis_destroy(none);
    cs_redis_destroy(wrong);
    cs_redis_destroy(right);
    cs_redis_destroy(admin);
}

static void test_unreachable_is_retry(void **state)
{
    (void)state;
    int port = cs_test_free_port();
    cs_redis_t *r = cs_redis_new("127.0.0.1", port, NULL, 300);
    assert_int_equal(cs_redis_connect(r, errstr, sizeof(errstr)), CS_ERR_RETRY);
    assert_non_null(strstr(errstr, "redis 127.0.0.1:"));
    assert_int_equal(cs_redis_connect_retry(r, 300, errstr, sizeof(errstr)),
                     CS_ERR_RETRY);
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    const char *ping[] = {"PING"};
    cs_redis_pipe_add(p, 1, ping, NULL);
    assert_int_equal(cs_redis_pipe_exec(r, p, errstr, sizeof(errstr)), CS_ERR_RETRY);
    cs_redis_pipe_destroy(p);
    cs_redis_destroy(r);
}

/* A server that accepts but never answers: the command timeout fires instead of
 * hanging the caller. */
static void test_command_timeout(void **state)
{
    (void)state;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(s, 4), 0);
    getsockname(s, (struct sockaddr *)&sin, &len);
    cs_redis_t *r = cs_redis_new("127.0.0.1", ntohs(sin.sin_port), NULL, 200);
    assert_int_equal(cs_redis_connect(r, errstr, sizeof(errstr)), CS_OK);
    const char *ping[] = {"PING"};
    redisReply *reply = cs_redis_command(r, 1, ping, NULL, errstr, sizeof(errstr));
    assert_null(reply);
    assert_false(cs_redis_connected(r));
    cs_redis_destroy(r);
    close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_function_load_and_fcall),
        cmocka_unit_test(test_bad_library_is_fatal),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_reconnect_resends_pipeline),
        cmocka_unit_test(test_missing_function_is_reloaded),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_unreachable_is_retry),
        cmocka_unit_test(test_command_timeout),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
