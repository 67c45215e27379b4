/* Unit tests of in-flight tracking: the finished prefix, out-of-order completion, several
 * partitions, forgotten (revoked) partitions whose messages finish later. */
#include "testenv.h"

#include <stdio.h>
#include <string.h>

#include "caresignal/inflight.h"

typedef struct stored {
    char topic[32];
    int32_t partition;
    int64_t offset;
    int n;
} stored_t;

static void record(void *opaque, const char *topic, int32_t partition, int64_t next)
{
    stored_t *s = opaque;
    snprintf(s->topic, sizeof(s->topic), "%s", topic);
    s->partition = partition;
    s->offset = next;
    s->n++;
}

static void test_prefix_only(void **state)
{
    (void)state;
    cs_inflight_t *t = cs_inflight_new();
    cs_inflight_msg_t *m[5];
    for (int i = 0; i < 5; i++)
        m[i] = cs_inflight_add(t, "a", 0, 10 + i);
    stored_t s = {0};
    cs_inflight_done(t, m[1]);
    cs_inflight_done(t, m[2]);
    assert_int_equal(cs_inflight_collect(t, record, &s), 0); /* 10 holds them back */
    assert_int_equal(s.n, 0);
    cs_inflight_done(t, m[0]);
    assert_int_equal(cs_inflight_collect(t, record, &s), 3);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.offset, 13);
    assert_int_equal(cs_inflight_count(t), 2);
    assert_int_equal(cs_inflight_pending(t, NULL, 0), 2);
    cs_inflight_done(t, m[4]);
    cs_inflight_done(t, m[4]); /* twice is harmless */
    assert_int_equal(cs_inflight_pending(t, "a", 0), 1);
    cs_inflight_done(t, m[3]);
    assert_int_equal(cs_inflight_collect(t, record, &s), 2);
    assert_int_equal(s.offset, 15);
    assert_int_equal(cs_inflight_count(t), 0);
    cs_inflight_destroy(t);
}

static void test_partitions_independent(void **state)
{
    (void)state;
    cs_inflight_t *t = cs_inflight_new();
    cs_inflight_msg_t *a = cs_inflight_add(t, "a", 0, 1);
    cs_inflight_msg_t *b = cs_inflight_add(t, "a", 1, 7);
    cs_inflight_msg_t *c = cs_inflight_add(t, "b", 0, 3);
    stored_t s = {0};
    cs_inflight_done(t, b);
    cs_inflight_collect(t, record, &s);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.topic, "a");
    assert_int_equal(s.partition, 1);
    assert_int_equal(s.offset, 8);
    cs_inflight_done(t, c);
    cs_inflight_collect(t, record, &s);
    assert_string_equal(s.topic, "b");
    assert_int_equal(s.offset, 4);
    assert_int_equal(cs_inflight_pending(t, "a", 0), 1);
    (void)a;
    cs_inflight_destroy(t); /* frees what is still in flight */
}

static void test_forgotten_partition(void **state)
{
    (void)state;
    cs_inflight_t *t = cs_inflight_new();
    cs_inflight_msg_t *old = cs_inflight_add(t, "a", 0, 100);
    cs_inflight_forget(t, "a", 0);
    /* assigned again: a fresh start, independent of the old handle */
    cs_inflight_msg_t *fresh = cs_inflight_add(t, "a", 0, 40);
    stored_t s = {0};
    cs_inflight_done(t, fresh);
    cs_inflight_collect(t, record, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.offset, 41);
    cs_inflight_done(t, old); /* its outputs completed after the revoke */
    assert_int_equal(cs_inflight_collect(t, record, &s), 1);
    assert_int_equal(s.n, 1); /* released without a report */
    assert_int_equal(cs_inflight_count(t), 0);
    cs_inflight_destroy(t);
    cs_inflight_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_only),
        cmocka_unit_test(test_partitions_independent),
        cmocka_unit_test(test_forgotten_partition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
