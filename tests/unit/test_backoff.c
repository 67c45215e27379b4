/* Unit tests of the backoff policy: bounds of every delay, doubling to the cap, reset. */
#include "testenv.h"

#include "caresignal/backoff.h"

static void test_delays_within_jitter_bounds_and_capped(void **state)
{
    (void)state;
    cs_backoff_t b;
    cs_backoff_init(&b, 100, 5000);
    long step = 100;
    for (int i = 0; i < 40; i++) {
        long d = cs_backoff_next(&b);
        assert_in_range(d, step / 2, step);
        step = step * 2 > 5000 ? 5000 : step * 2;
    }
    assert_int_equal(b.step_ms, 5000);
    assert_int_equal(b.attempts, 40);
    cs_backoff_reset(&b);
    assert_in_range(cs_backoff_next(&b), 50, 100);
}

static void test_jitter_spreads(void **state)
{
    (void)state;
    cs_backoff_t b;
    cs_backoff_init(&b, 5000, 5000);
    long lo = 5000, hi = 0;
    for (int i = 0; i < 200; i++) {
        long d = cs_backoff_next(&b);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(hi - lo > 1000); /* not one fixed delay */
}

static void test_degenerate_bounds(void **state)
{
    (void)state;
    cs_backoff_t b;
    cs_backoff_init(&b, 0, 0);
    for (int i = 0; i < 5; i++)
        assert_in_range(cs_backoff_next(&b), 0, 1);
    cs_backoff_init(&b, 1, 1000000000L);
    for (int i = 0; i < 100; i++)
        assert_in_range(cs_backoff_next(&b), 0, 1000000000L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delays_within_jitter_bounds_and_capped),
        cmocka_unit_test(test_jitter_spreads),
        cmocka_unit_test(test_degenerate_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
