/* Unit tests of the consumer runtime's own logic, without a broker: the ledger of
 * messages in flight (offsets stored up to the finished prefix whatever order outputs
 * complete in, abandoned and revoked messages never stored, drain accounting on revoke)
 * and flow control (nothing taken past the in-flight bound, a pause only when it stays
 * there, resume at half of it). */
#include "testenv.h"

#include <stdio.h>
#include <string.h>

#include "caresignal/ledger.h"
#include "caresignal/runtime.h"

typedef struct stored {
    int64_t next[4]; /* partition -> next offset stored (-1: none) */
    int reports;
} stored_t;

static void record(void *opaque, const char *topic, int32_t partition, int64_t next)
{
    stored_t *s = opaque;
    (void)topic;
    s->next[partition] = next;
    s->reports++;
}

static stored_t fresh(void)
{
    stored_t s = {{-1, -1, -1, -1}, 0};
    return s;
}

static rd_kafka_topic_partition_list_t *parts_of(int32_t partition)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, "t", partition);
    return l;
}

/* Outputs completing in any order: a partition's stored offset only ever covers a prefix
 * of messages whose every output is done. */
static void test_watermark_out_of_order(void **state)
{
    (void)state;
    cs_ledger_t l;
    assert_int_equal(cs_ledger_init(&l), CS_OK);
    cs_rt_msg_t *m[6];
    for (int i = 0; i < 6; i++) {
        m[i] = cs_ledger_add(&l, NULL, "t", 0, 100 + i, 10);
        cs_rt_hold(m[i]); /* a produced record */
        cs_rt_hold(m[i]); /* a Redis reply */
        cs_rt_release(m[i]); /* the handler started everything */
    }
    assert_int_equal(l.bytes, 60);
    stored_t s = fresh();
    /* the last messages finish first */
    for (int i = 5; i >= 2; i--) {
        cs_rt_release(m[i]);
        cs_rt_release(m[i]);
    }
    assert_int_equal(cs_ledger_collect(&l, record, &s), 0);
    assert_int_equal(s.reports, 0);
    assert_int_equal(l.bytes, 20); /* finished messages are freed at once */
    cs_rt_release(m[0]); /* one output of the first: not finished yet */
    assert_int_equal(cs_ledger_collect(&l, record, &s), 0);
    cs_rt_release(m[0]);
    assert_int_equal(cs_ledger_collect(&l, record, &s), 1);
    assert_int_equal(s.next[0], 101); /* 101 still holds the rest back */
    cs_rt_release(m[1]);
    cs_rt_release(m[1]);
    assert_int_equal(cs_ledger_collect(&l, record, &s), 5);
    assert_int_equal(s.next[0], 106);
    assert_int_equal(cs_ledger_count(&l), 0);
    assert_int_equal(l.bytes, 0);
    cs_ledger_clear(&l);
}

/* A message given up (the program stops with it unfinished) is never stored, nor is
 * anything after it on its partition; other partitions go on. */
static void test_abandoned_holds_back_its_partition_only(void **state)
{
    (void)state;
    cs_ledger_t l;
    assert_int_equal(cs_ledger_init(&l), CS_OK);
    cs_rt_msg_t *a0 = cs_ledger_add(&l, NULL, "t", 0, 1, 1);
    cs_rt_msg_t *a1 = cs_ledger_add(&l, NULL, "t", 0, 2, 1);
    cs_rt_msg_t *b0 = cs_ledger_add(&l, NULL, "t", 1, 7, 1);
    cs_rt_abandon(a0);
    cs_rt_release(a1);
    cs_rt_release(b0);
    stored_t s = fresh();
    cs_ledger_collect(&l, record, &s);
    assert_int_equal(s.next[0], -1);
    assert_int_equal(s.next[1], 8);
    /* nothing of partition 0 can finish here now: a drain does not wait for it */
    assert_int_equal(cs_ledger_busy(&l, NULL), 0);
    cs_ledger_clear(&l);
}

/* Drain on revoke: the runtime waits while revoked partitions have busy messages; what
 * finished is stored before the revoke returns; once forgotten, what is still held is
 * released unstored when its outputs complete, and a re-assignment starts afresh. */
static void test_drain_on_revoke(void **state)
{
    (void)state;
    cs_ledger_t l;
    assert_int_equal(cs_ledger_init(&l), CS_OK);
    cs_rt_msg_t *p0[3], *p1;
    for (int i = 0; i < 3; i++) {
        p0[i] = cs_ledger_add(&l, NULL, "t", 0, 10 + i, 1);
        cs_rt_hold(p0[i]);
        cs_rt_release(p0[i]);
    }
    p1 = cs_ledger_add(&l, NULL, "t", 1, 50, 1);
    rd_kafka_topic_partition_list_t *revoked = parts_of(0);
    assert_int_equal(cs_ledger_busy(&l, revoked), 3);
    assert_int_equal(cs_ledger_busy(&l, NULL), 4);
    /* the drain: two finish in time, the third does not */
    cs_rt_release(p0[0]);
    cs_rt_release(p0[1]);
    assert_int_equal(cs_ledger_busy(&l, revoked), 1);
    stored_t s = fresh();
    cs_ledger_collect(&l, record, &s);
    assert_int_equal(s.next[0], 12); /* stored, then committed by the revoke */
    cs_ledger_forget(&l, revoked);
    assert_int_equal(cs_ledger_busy(&l, revoked), 0);
    assert_int_equal(cs_ledger_busy(&l, NULL), 1); /* partition 1 untouched */
    /* the same partition comes back (eager rebalance) from the committed offset */
    assert_int_equal(cs_ledger_refetched(&l, "t", 0, 12), 0);
    cs_rt_msg_t *again = cs_ledger_add(&l, NULL, "t", 0, 12, 1);
    /* the old owner's last output completes late: released, never stored */
    cs_rt_release(p0[2]);
    s = fresh();
    cs_ledger_collect(&l, record, &s);
    assert_int_equal(s.next[0], -1);
    cs_rt_release(again);
    cs_ledger_collect(&l, record, &s);
    assert_int_equal(s.next[0], 13);
    cs_rt_release(p1);
    cs_ledger_collect(&l, record, &s);
    assert_int_equal(s.next[1], 51);
    assert_int_equal(cs_ledger_count(&l), 0);
    assert_int_equal(l.bytes, 0);
    rd_kafka_topic_partition_list_destroy(revoked);
    cs_ledger_clear(&l);
}

/* A message given up during the revoke's flush (the pager's alerts not yet in a route)
 * is freed by the forget, unstored. */
static void test_abandoned_freed_when_forgotten(void **state)
{
    (void)state;
    cs_ledger_t l;
    assert_int_equal(cs_ledger_init(&l), CS_OK);
    cs_rt_msg_t *m = cs_ledger_add(&l, NULL, "t", 2, 5, 100);
    cs_rt_abandon(m);
    assert_int_equal(l.bytes, 100);
    rd_kafka_topic_partition_list_t *revoked = parts_of(2);
    cs_ledger_forget(&l, revoked);
    assert_int_equal(l.bytes, 0);
    stored_t s = fresh();
    assert_int_equal(cs_ledger_collect(&l, record, &s), 1);
    assert_int_equal(s.reports, 0);
    rd_kafka_topic_partition_list_destroy(revoked);
    cs_ledger_clear(&l);
}

/* Fetched again after a pause and resume: dropped. */
static void test_refetched(void **state)
{
    (void)state;
    cs_ledger_t l;
    assert_int_equal(cs_ledger_init(&l), CS_OK);
    cs_rt_msg_t *m = cs_ledger_add(&l, NULL, "t", 0, 40, 1);
    assert_true(cs_ledger_refetched(&l, "t", 0, 40));
    assert_true(cs_ledger_refetched(&l, "t", 0, 39));
    assert_false(cs_ledger_refetched(&l, "t", 0, 41));
    assert_false(cs_ledger_refetched(&l, "t", 1, 40));
    cs_rt_release(m);
    cs_ledger_clear(&l);
}

static cs_flow_t flow(int paused)
{
    cs_flow_t f;
    cs_flow_init(&f, 100, 10000, 500, 1000);
    f.paused = paused;
    return f;
}

/* A turn takes what is left under the message bound, nothing at either bound; paused,
 * it still serves the queue. */
static void test_room_under_bound(void **state)
{
    (void)state;
    cs_flow_t f = flow(0), wide;
    cs_flow_init(&wide, 1000, 10000, 500, 1000);
    assert_int_equal(cs_flow_room(&f, 0, 0), 100);
    assert_int_equal(cs_flow_room(&wide, 0, 0), 500);
    assert_int_equal(cs_flow_room(&f, 97, 1000), 3);
    assert_int_equal(cs_flow_room(&f, 100, 1000), 0);
    assert_int_equal(cs_flow_room(&f, 1, 10000), 0);
    f.paused = 1;
    assert_int_equal(cs_flow_room(&f, 100, 1000), 500);
}

/* Pause while the handler holds, or at a bound held for pause_after; resume only at half
 * of both bounds and not held. */
static void test_flow_pause_at_bound(void **state)
{
    (void)state;
    cs_flow_t f = flow(0);
    assert_false(cs_flow_update(&f, 99, 1000, 0, 0));
    assert_true(cs_flow_due(&f) == INT64_MAX);
    /* at a bound briefly: nothing more is taken (room 0), but no pause */
    assert_false(cs_flow_update(&f, 100, 1000, 0, 5000));
    assert_int_equal(cs_flow_due(&f), 6000);
    assert_false(cs_flow_update(&f, 100, 1000, 0, 5999));
    f = flow(0);
    assert_false(cs_flow_update(&f, 1, 10000, 0, 0));
    assert_false(cs_flow_update(&f, 1, 10000, 0, 10));
    /* at a bound for long: paused */
    f = flow(0);
    assert_false(cs_flow_update(&f, 100, 1000, 0, 0));
    assert_true(cs_flow_update(&f, 100, 1000, 0, 1000));
    assert_true(cs_flow_due(&f) == INT64_MAX);
    f = flow(0);
    assert_false(cs_flow_update(&f, 1, 10000, 0, 0));
    assert_true(cs_flow_update(&f, 1, 10000, 0, 5000));
    /* below the bound in between: the time at it starts again */
    f = flow(0);
    assert_false(cs_flow_update(&f, 100, 1000, 0, 0));
    assert_false(cs_flow_update(&f, 99, 1000, 0, 600));
    assert_false(cs_flow_update(&f, 100, 1000, 0, 700));
    assert_false(cs_flow_update(&f, 100, 1000, 0, 1600));
    /* held: paused at once, whatever is in flight */
    f = flow(0);
    assert_true(cs_flow_update(&f, 0, 0, 1, 0));
    /* paused: stays paused until both are at or below half */
    f = flow(1);
    assert_true(cs_flow_update(&f, 99, 1000, 0, 0));
    assert_true(cs_flow_update(&f, 51, 1000, 0, 0));
    assert_true(cs_flow_update(&f, 50, 5001, 0, 0));
    assert_false(cs_flow_update(&f, 50, 5000, 0, 0));
    assert_false(f.paused);
    f = flow(1);
    assert_true(cs_flow_update(&f, 0, 0, 1, 0));
    assert_false(cs_flow_update(&f, 0, 0, 0, 0));
}

/* The ledger drives the flow: a lag of any size never puts more than the bound in
 * memory. Outputs that keep completing never cause a pause (each turn takes what room is
 * left); outputs that stall at the bound for pause_after do, and consumption resumes
 * only once half is stored. */
static void test_flow_with_ledger_stays_bounded(void **state)
{
    (void)state;
    enum { MAX = 64, LAG = 10000, POLL = 10, AFTER = 50 };
    static cs_rt_msg_t *held[LAG];
    for (int stall = 0; stall < 2; stall++) {
        cs_ledger_t l;
        assert_int_equal(cs_ledger_init(&l), CS_OK);
        cs_flow_t f;
        cs_flow_init(&f, MAX, (size_t)MAX * 1000 * 2, POLL, AFTER);
        int pauses = 0, next = 0, done = 0;
        size_t peak = 0;
        stored_t s = fresh();
        for (int64_t t = 0; done < LAG; t++) { /* one turn a millisecond */
            size_t room = cs_flow_room(&f, cs_ledger_count(&l), l.bytes);
            /* paused partitions bring nothing */
            for (size_t k = 0; k < room && next < LAG && !f.paused; k++, next++)
                held[next] = cs_ledger_add(&l, NULL, "t", 0, next, 1000);
            /* outputs complete, oldest first: 3 a turn, or (stall) none for 200 turns
             * out of every 1,000 */
            int completing = stall && t % 1000 < 200 ? 0 : 3;
            for (int k = 0; k < completing && done < next; k++)
                cs_rt_release(held[done++]);
            cs_ledger_collect(&l, record, &s);
            if (cs_ledger_count(&l) > peak)
                peak = cs_ledger_count(&l);
            int was = f.paused;
            pauses += cs_flow_update(&f, cs_ledger_count(&l), l.bytes, 0, t) && !was;
        }
        assert_true(peak <= MAX);
        if (stall)
            assert_true(pauses > 1);
        else
            assert_int_equal(pauses, 0);
        assert_int_equal(s.next[0], LAG);
        cs_ledger_clear(&l);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watermark_out_of_order),
        cmocka_unit_test(test_abandoned_holds_back_its_partition_only),
        cmocka_unit_test(test_drain_on_revoke),
        cmocka_unit_test(test_abandoned_freed_when_forgotten),
        cmocka_unit_test(test_refetched),
        cmocka_unit_test(test_room_under_bound),
        cmocka_unit_test(test_flow_pause_at_bound),
        cmocka_unit_test(test_flow_with_ledger_stays_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
